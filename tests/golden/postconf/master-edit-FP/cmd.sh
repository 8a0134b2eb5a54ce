# Postfix commands pause ~2s when main.cf/master.cf is younger than one
# second; after each edit, age the files so the suite stays fast (the output
# is the same either way).
age() { touch -d '1 hour ago' main.cf master.cf; }

# -Fe edits one field, -Pe/-PX one -o parameter. An edited entry is
# rewritten in -Mf style after the comment lines that follow it.
run postconf -c . -Fe 'smtp/inet/chroot=n'
age
run cat master.cf
run postconf -c . -Fe 'pickup/unix/wakeup = 30' 'local/unix/command=local -v'
age
run cat master.cf
run postconf -c . -Pe 'relay/unix/smtp_helo_timeout=10' 'relay/unix/new_param=1'
age
run cat master.cf
run postconf -c . -PX relay/unix/syslog_name smtp/inet/nonexist
age
run cat master.cf
# with -F/-P, an argument with '=' implies -e
run postconf -c . -F 'smtp/inet/chroot=y'
run postconf -c . -P 'smtp/inet/smtpd_banner=hello'
age
run cat master.cf
run postconf -c . -Pe 'smtp/inet/smtpd_banner=hello world'
run postconf -c . -Fe 'smtp/inet/bogus=1'
run postconf -c . -Fe 'smtp/inet/type=bogus'
run postconf -c . -Fe 'smtp/inet/wakeup=1 2'
run postconf -c . -Fe 'smtp/*/chroot=n'
run postconf -c . -Pe 'smtp/inet/*=x'
run postconf -c . -Pe 'smtp/inet=x'
run cat master.cf
