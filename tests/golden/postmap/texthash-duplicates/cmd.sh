# Duplicate keys: warning with file and line and the key as written; the
# first value wins by default, -r replaces (last wins), -w ignores silently.
# With -f, "K" is a different key from "k".
run postmap -c . -q k texthash:table
run postmap -c . -r -q k texthash:table
run postmap -c . -w -q k texthash:table
run postmap -c . -f -q k texthash:table
run postmap -c . -f -q K texthash:table
