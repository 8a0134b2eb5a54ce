# With smtputf8_enable = yes, keys fold with Unicode case folding (ÄBC and
# äbc match); -u disables that (ASCII-only folding). Non-UTF-8 input lines
# are skipped with a warning; a non-UTF-8 query key is rejected.
run postmap -c . -q äbc texthash:table
run postmap -c . -q ÉCOLE texthash:table
run postmap -c . -q PLAIN texthash:table
run postmap -c . -u -q äbc texthash:table
run postmap -c . -u -q ÉCOLE texthash:table
run postmap -c . -u -q École texthash:table
run postmap -c . lmdb:table
run postmap -c . -s lmdb:table
run postmap -c . -q äbc lmdb:table
run postmap -c . -q good texthash:badtable
run postmap -c . lmdb:badtable
run postmap -c . -s lmdb:badtable
run postmap -c . -q "$(printf 'ab\377')" texthash:table
