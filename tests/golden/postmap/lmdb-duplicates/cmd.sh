# Duplicate handling when building lmdb: default warns and keeps the first,
# -r keeps the last silently, -w keeps the first silently. -f keeps case.
run postmap -c . lmdb:table
run postmap -c . -q k lmdb:table
run postmap -c . -r lmdb:table
run postmap -c . -q k lmdb:table
run postmap -c . -w lmdb:table
run postmap -c . -q k lmdb:table
run postmap -c . -f lmdb:table
run postmap -c . -s lmdb:table
