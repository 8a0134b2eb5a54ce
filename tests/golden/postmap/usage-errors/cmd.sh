# Unknown table types, bad options, missing arguments, conflicting modes.
run postmap -c . -q x foo:bar
run postmap -c . foo:bar
run postmap -c . foo:table
run postmap -c . regexp:table
run postmap -c . -q root unix:foo
# dbm: is not in Debian's Postfix; Rostfix supports it (stored as lmdb), so it
# is tested in crates/cli/tests, not here.
run postmap -c . -q x static
run postmap -c . -z
run postmap -c .
run postmap -c . -q
run postmap -c . -q k
run postmap -c . -q k -d k texthash:table
run postmap -c . -q k -s texthash:table
run postmap -c . -b -q k texthash:table
run postmap -c . -c
run postmap -c nosuchdir -q k texthash:table
