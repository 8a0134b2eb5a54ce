# Postfix commands pause ~2s when main.cf/master.cf is younger than one
# second; after each edit, age the files so the suite stays fast (the output
# is the same either way).
age() { touch -d '1 hour ago' main.cf master.cf; }

# postconf -e: an existing setting is replaced in place (continuation lines
# dropped, comment lines kept), new ones are appended at the end. (Several
# new names in one -e are appended in hash-table order, which varies from
# run to run: each command here adds at most one new name.)
run postconf -c . -e 'relayhost = [new.example.com]'
age
run cat main.cf
run postconf -c . -e 'mydestination = $myhostname, localhost'
age
run cat main.cf
run postconf -c . -e 'smtpd_banner = $myhostname ESMTP' 'myorigin=example.org'
age
run cat main.cf
run postconf -c . -e 'home_mailbox = Maildir/'
age
run cat main.cf
run postconf -c . -e '  smtpd_helo_restrictions   =   permit_mynetworks,   reject_invalid_helo_hostname  '
age
run cat main.cf
run postconf -c . -e 'alias_maps='
age
run cat -A main.cf
run postconf -c . -e mail_name=third
age
run cat main.cf
run postconf -c . -e relayhost=a relayhost=b
age
run cat main.cf
run postconf -c . -e foo_bar=1
age
run cat main.cf
# an argument with '=' implies -e
run postconf -c . relayhost=implicit
age
run cat main.cf
run postconf -c . -n
