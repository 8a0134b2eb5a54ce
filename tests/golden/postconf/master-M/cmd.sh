# -M prints entries one per line, fields at columns 0/11/17/25/33/41/49/57
# (at least one space apart); -Mf folds long lines. Selection by name[/type].
run postconf -c . -M
run postconf -c . -Mf
run postconf -c . -M smtp/inet
run postconf -c . -M smtp
run postconf -c . -M options/unix submission
run postconf -c . -M 'smtp/*'
run postconf -c . -M '*/unix'
run postconf -c . -M nonexist
run postconf -c . -M smtp/bogus
run postconf -c . -M /inet
run postconf -c . -M smtp/inet/x
run postconf -c . -Mx options
run postconf -c . -Mh smtp
