src/pg/append.o: src/pg/append.cpp src/pg/direct_insert.hpp \
 src/pg/runtime.hpp src/pg/guard.hpp src/pg/pg.hpp \
 src/pg/../core/validation.hpp src/pg/../core/uuid.hpp src/pg/horizon.hpp \
 src/pg/../core/limits.hpp
src/pg/direct_insert.hpp:
src/pg/runtime.hpp:
src/pg/guard.hpp:
src/pg/pg.hpp:
src/pg/../core/validation.hpp:
src/pg/../core/uuid.hpp:
src/pg/horizon.hpp:
src/pg/../core/limits.hpp:
