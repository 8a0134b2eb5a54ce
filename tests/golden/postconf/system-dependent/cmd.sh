# Rostfix's own rostfix_ parameters (DESIGN.md section 1) are left out of the counts.
# SYSTEM-DEPENDENT: values computed from the host (myhostname, mydomain,
# mynetworks, ...). Only comparable live on the machine that recorded it.
run postconf -c . myhostname mydomain mynetworks
run postconf -c . -d myhostname mydomain mynetworks inet_interfaces mail_version
run postconf -c . -x myorigin mydestination smtpd_banner
run postconf -c . -h -x myorigin
run postconf -c . -d -x mydestination myorigin
# postconf with no name prints every parameter, like -d, but with main.cf
# (and -c) applied; process_id differs between runs.
postconf -c . 2>&1 | grep -v '^process_id =' >all.txt
postconf -c . -d 2>&1 | grep -v '^process_id =' >defaults.txt
run diff defaults.txt all.txt
run sh -c 'postconf -c . | grep -v ^rostfix_ | wc -l'
run sh -c 'postconf -c . -d | grep -v ^rostfix_ | wc -l'
run sh -c 'postconf -c . -n | wc -l'
