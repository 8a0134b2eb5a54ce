# Missing database files for queries, and missing source files for builds.
run postmap -c . -q key lmdb:nosuch
run postmap -c . -q key cdb:nosuch
run postmap -c . -q key hash:nosuch
run postmap -c . -q key texthash:nosuch
run postmap -c . -q key regexp:nosuch
run postmap -c . -q key pcre:nosuch
run postmap -c . -q key cidr:nosuch
run postmap -c . lmdb:nosuch
run postmap -c . cdb:nosuch
run postmap -c . nosuch
run ls
