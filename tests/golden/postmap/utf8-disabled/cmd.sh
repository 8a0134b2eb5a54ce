# With an empty main.cf (compatibility_level 0, smtputf8_enable = no) only
# ASCII letters fold, even with -U; non-UTF-8 input is accepted as is.
run postmap -c . -q äbc texthash:table
run postmap -c . -q ÄBC texthash:table
run postmap -c . -q Äbc texthash:table
run postmap -c . -U -q äbc texthash:table
run postmap -c . -q ÉCOLE texthash:table
run postmap -c . -q bad texthash:badtable
run postmap -c . lmdb:table
run postmap -c . -s lmdb:table
