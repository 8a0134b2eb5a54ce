# unix:passwd.byname and unix:group.byname (getpwnam/getgrnam), output in
# /etc/passwd and /etc/group line format; keys are folded to lower case.
run postmap -c . -q root unix:passwd.byname
run postmap -c . -q ROOT unix:passwd.byname
run postmap -c . -q no-such-user-xyz unix:passwd.byname
run postmap -c . -q root unix:group.byname
run postmap -c . -q no-such-group-xyz unix:group.byname
run postmap -c . -q root unix:shadow.byname
run postmap -c . -s unix:passwd.byname
