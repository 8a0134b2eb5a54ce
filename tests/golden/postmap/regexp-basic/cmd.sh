# regexp: $N and ${N} substitution, $$ for a literal dollar, if/endif,
# any delimiter character, !/pattern/ negation, default case-insensitive
# matching, a miss (exit 1), -q - from stdin, and -s (unsupported).
run postmap -c . -q user+abc@example.com regexp:table
run postmap -c . -q USER+ABC@EXAMPLE.COM regexp:table
run postmap -c . -q braces-mid regexp:table
run postmap -c . -q UPPER regexp:table
run postmap -c . -q dollar regexp:table
run postmap -c . -q if-a regexp:table
run postmap -c . -q if-b regexp:table
run postmap -c . -q if-c regexp:table
run postmap -c . -q pipeX regexp:table
run postmap -c . -q something.org regexp:table
run postmap -c . -q other.com regexp:table
run_in keys postmap -c . -q - regexp:table
run postmap -c . -s regexp:table
