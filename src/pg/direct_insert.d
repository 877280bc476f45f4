src/pg/direct_insert.o: src/pg/direct_insert.cpp src/pg/direct_insert.hpp \
 src/pg/runtime.hpp src/pg/guard.hpp src/pg/pg.hpp \
 src/pg/../core/validation.hpp src/pg/../core/uuid.hpp
src/pg/direct_insert.hpp:
src/pg/runtime.hpp:
src/pg/guard.hpp:
src/pg/pg.hpp:
src/pg/../core/validation.hpp:
src/pg/../core/uuid.hpp:
