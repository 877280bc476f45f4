src/pg/horizon.o: src/pg/horizon.cpp src/pg/horizon.hpp \
 src/pg/runtime.hpp src/pg/guard.hpp src/pg/pg.hpp \
 src/pg/../core/validation.hpp src/pg/../core/uuid.hpp
src/pg/horizon.hpp:
src/pg/runtime.hpp:
src/pg/guard.hpp:
src/pg/pg.hpp:
src/pg/../core/validation.hpp:
src/pg/../core/uuid.hpp:
