# Sourced by run.sh and make-j2.sh: write the C project their `make -j2` scenario builds into
# directory $1 (48 files of a few functions each, a main, a Makefile with `all` and `clean`).
write_c_project() {
  local d=$1
  mkdir -p "$d"
  for i in $(seq 48); do
    { echo "int f$i(int x) {"; for j in $(seq 40); do echo "  x = x * $j + $i; x ^= x >> 3;"; done
      echo "  return x; }"; } > "$d/f$i.c"
  done
  { echo 'int main(void) { int s = 0;'; for i in $(seq 48); do echo "  extern int f$i(int); s += f$i($i);"; done
    echo '  return s & 1; }'; } > "$d/main.c"
  printf 'OBJS := $(patsubst %%.c,%%.o,$(wildcard *.c))\nall: prog\nprog: $(OBJS)\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O1 -c -o $@ $<\nclean:\n\trm -f *.o prog\n' > "$d/Makefile"
}
