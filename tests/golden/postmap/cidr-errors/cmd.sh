# cidr syntax problems: warnings with file and line; bad rules are skipped.
run postmap -c . -q 127.0.0.1 cidr:table
run postmap -c . -q 10.1.2.3 cidr:table
