# Without a type, postmap uses default_database_type (hash: Berkeley DB,
# file table.db). Keys fold; -s works. Rostfix stores hash: as lmdb (DESIGN.md
# section 6), so -s output is compared sorted: Berkeley DB's order is not kept.
sorted() { "$@" >"$RUN_TMP/sorted"; st=$?; sort "$RUN_TMP/sorted"; return $st; }
run postmap -c . table
run ls
run postmap -c . -q key table
run postmap -c . -q KEY hash:table
run postmap -c . -q nothere hash:table
run sorted postmap -c . -s hash:table
run postmap -c . -N -q key hash:table
run postmap -c . -n -q key hash:table
run postmap -c . -d other hash:table
run sorted postmap -c . -s table
