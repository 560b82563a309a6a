// Grover search for |101> on three qubits: two iterations find it 95% of the time.
OPENQASM 2.0;
include "qelib1.inc";
gate ccz a, b, c { h c; ccx a, b, c; h c; }
gate oracle a, b, c { x b; ccz a, b, c; x b; }
gate diffuser a, b, c {
  h a; h b; h c;
  x a; x b; x c;
  ccz a, b, c;
  x a; x b; x c;
  h a; h b; h c;
}
qreg q[3];
creg c[3];
h q;
oracle q[0], q[1], q[2];
diffuser q[0], q[1], q[2];
oracle q[0], q[1], q[2];
diffuser q[0], q[1], q[2];
measure q -> c;
