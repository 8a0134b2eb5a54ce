# -s dumps "key<TAB>value". texthash is an in-memory hash table whose
# bucket order is randomized per process (hash_fnv seeded from /dev/urandom),
# so the output is sorted here. Keys come out folded to lower case unless -f.
sorted() { "$@" >"$RUN_TMP/sorted"; st=$?; sort "$RUN_TMP/sorted"; return $st; }
run sorted postmap -c . -s texthash:table
run sorted postmap -c . -f -s texthash:table
