# regexp syntax problems are warnings with map name, file and line, repeated
# on every open; the bad rules are skipped, the rest still works. An empty
# replacement yields an empty result (with warnings at lookup time).
run postmap -c . -q ok regexp:table
run postmap -c . -q x1 regexp:table
run postmap -c . -q noval regexp:table
run postmap -c . -q missing regexp:table
