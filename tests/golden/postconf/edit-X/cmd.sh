# Postfix commands pause ~2s when main.cf/master.cf is younger than one
# second; after each edit, age the files so the suite stays fast (the output
# is the same either way).
age() { touch -d '1 hour ago' main.cf master.cf; }

# postconf -X: remove settings (with their continuation lines; comment
# lines inside are kept); unknown names are ignored silently.
run postconf -c . -X relayhost
age
run cat main.cf
run postconf -c . -X mydestination mail_name
age
run cat main.cf
run postconf -c . -X nonexistent
run postconf -c . -X 'alias_maps = x'
run postconf -c . -X
run cat main.cf
run postconf -c . -n
