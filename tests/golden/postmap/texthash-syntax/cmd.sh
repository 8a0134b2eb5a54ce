# Source syntax shared by texthash and postmap builds: comments (also
# indented), blank lines, continuation lines (a line starting with whitespace
# continues the previous one, the newline is removed and the leading
# whitespace kept, even across a blank line), whitespace trimmed around the
# value but kept inside it, lines without a value, "quoted keys" (the quotes
# stay part of the key), an unbalanced quote, a trailing backslash (literal).
# The table file's line 6 starts with a TAB, so it continues line 5.
# Warnings for a continued line report its first line (line 20 here).
sorted() { "$@" >"$RUN_TMP/sorted"; st=$?; sort "$RUN_TMP/sorted"; return $st; }
run postmap -c . -q plain texthash:table
run postmap -c . -q spaced texthash:table
run postmap -c . -q tabkey texthash:table
run postmap -c . -q novalue texthash:table
run postmap -c . -q cont texthash:table
run postmap -c . -q afterblank texthash:table
run postmap -c . -q hash texthash:table
run postmap -c . -q colon:key texthash:table
run postmap -c . -q '"quoted key"' texthash:table
run postmap -c . -q '"QUOTED KEY"' texthash:table
run postmap -c . -q 'quoted key' texthash:table
run postmap -c . -q back texthash:table
run sorted postmap -c . -s texthash:table
