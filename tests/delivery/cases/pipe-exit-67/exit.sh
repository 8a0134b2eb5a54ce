# exit.sh CODE [TEXT...]: reads the message, prints TEXT if there is one
# and exits with CODE.
code=$1
shift
cat > /dev/null
[ $# -gt 0 ] && echo "$@"
exit "$code"
