# regexp flags: i toggles the default case-insensitivity off; x toggles
# REG_EXTENDED off (basic RE: ( | are literal, \( \) group); m enables
# REG_NEWLINE (^ and $ match at embedded newlines, . does not match one).
nl='
'
run postmap -c . -q Exact regexp:table
run postmap -c . -q "Multi one${nl}two" regexp:table
run postmap -c . -q exact regexp:table
run postmap -c . -q 'bre(a|b)c' regexp:table
run postmap -c . -q brea regexp:table
run postmap -c . -q extb regexp:table
run postmap -c . -q "zz${nl}first" regexp:table
run postmap -c . -q "two${nl}lines" regexp:table
run postmap -c . -q "multi one${nl}two" regexp:table
run postmap -c . -q "MULTI one${nl}two" regexp:table
