# pcre flags: i toggles caseless off, x extended, s toggles the default
# DOTALL off, m multiline, U ungreedy, A anchored, E dollar-endonly.
nl='
'
run postmap -c . -q Exact pcre:table
run postmap -c . -q EXACT pcre:table
run postmap -c . -q extended pcre:table
run postmap -c . -q "a${nl}b" pcre:table
run postmap -c . -q "c${nl}d" pcre:table
run postmap -c . -q "zz${nl}first" pcre:table
run postmap -c . -q aaa pcre:table
run postmap -c . -q greedyaaa pcre:table
run postmap -c . -q anchor pcre:table
run postmap -c . -q xanch pcre:table
run postmap -c . -q "the end${nl}" pcre:table
run postmap -c . -q "plainend${nl}" pcre:table
run postmap -c . -q obs pcre:table
