# Without a type, postmap uses default_database_type (hash: Berkeley DB,
# file table.db). Keys fold; -s works (Berkeley DB hash order).
run postmap -c . table
run ls
run postmap -c . -q key table
run postmap -c . -q KEY hash:table
run postmap -c . -q nothere hash:table
run postmap -c . -s hash:table
run postmap -c . -N -q key hash:table
run postmap -c . -n -q key hash:table
run postmap -c . -d other hash:table
run postmap -c . -s table
