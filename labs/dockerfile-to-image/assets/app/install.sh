# Stands in for a slow dependency install (pip install, npm ci, go mod download):
# it takes a few seconds and leaves a mark that tells one install from another.
echo "installing $(wc -l < deps.txt) dependencies (slowly)..."
sleep 2
mkdir -p /deps
cp deps.txt /deps/
cat /proc/sys/kernel/random/uuid > /deps/install-id
echo "installed."
