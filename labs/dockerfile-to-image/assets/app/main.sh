echo "hello from myapp"
echo "dependencies: $(tr '\n' ' ' < /deps/deps.txt)"
