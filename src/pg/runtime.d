src/pg/runtime.o: src/pg/runtime.cpp src/pg/runtime.hpp src/pg/guard.hpp \
 src/pg/pg.hpp src/pg/../core/validation.hpp src/pg/../core/uuid.hpp \
 src/pg/../core/limits.hpp
src/pg/runtime.hpp:
src/pg/guard.hpp:
src/pg/pg.hpp:
src/pg/../core/validation.hpp:
src/pg/../core/uuid.hpp:
src/pg/../core/limits.hpp:
