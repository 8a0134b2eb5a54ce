# Postfix commands pause ~2s when main.cf/master.cf is younger than one
# second; after each edit, age the files so the suite stays fast (the output
# is the same either way).
age() { touch -d '1 hour ago' main.cf master.cf; }

# -Me replaces an entry in place (written in -Mf style) or appends it;
# -MX removes one, -M# comments it out (continuation lines included).
run postconf -c . -Me 'pickup/unix = pickup unix n - y 120 1 pickup'
age
run cat master.cf
run postconf -c . -Me 'submission/inet=submission inet n - y - - smtpd -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes'
age
run cat master.cf
run postconf -c . -Me 'foo/unix=bar unix - - n - - smtp'
age
run cat master.cf
run postconf -c . -MX relay/unix
age
run cat master.cf
run postconf -c . -M# smtp/inet local/unix nonexist/unix
age
run cat master.cf
run postconf -c . -M
# with -M, an argument with '=' implies -e
run postconf -c . -M 'pickup/unix=pickup unix n - y 60 1 pickup'
age
run cat master.cf
run postconf -c . -Me 'x/unix=x unix - - n - -'
run postconf -c . -Me x/unix
run postconf -c . -Me 'x=x unix - - n - - smtp'
run postconf -c . -MX smtp
run postconf -c . -M# 'smtp/inet=x'
run postconf -c . -Me 'x/unix=x bogus - - n - - smtp'
run cat master.cf
