# Postfix commands pause ~2s when main.cf/master.cf is younger than one
# second; after each edit, age the files so the suite stays fast (the output
# is the same either way).
age() { touch -d '1 hour ago' main.cf master.cf; }

# postconf -#: comment out settings by prefixing '#' to each line,
# continuation lines included.
run postconf -c . -# relayhost mydestination
age
run cat main.cf
run postconf -c . -# mail_name nonexistent
age
run cat main.cf
run postconf -c . -n
run postconf -c . -e relayhost=[back.example.com]
age
run cat main.cf
run postconf -c . -# 'relayhost=x'
