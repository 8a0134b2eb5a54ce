# NUL termination. By default postmap stores lmdb keys and values WITH a
# trailing NUL; -N forces it, -n stores without. A plain query tries both;
# -N queries only the with-NUL form, -n only the without-NUL form.
run postmap -c . lmdb:table
run postmap -c . -q key lmdb:table
run postmap -c . -N -q key lmdb:table
run postmap -c . -n -q key lmdb:table
run postmap -c . -N lmdb:table
run postmap -c . -q key lmdb:table
run postmap -c . -N -q key lmdb:table
run postmap -c . -n -q key lmdb:table
run postmap -c . -n lmdb:table
run postmap -c . -q key lmdb:table
run postmap -c . -N -q key lmdb:table
run postmap -c . -n -q key lmdb:table
run postmap -c . -s lmdb:table
