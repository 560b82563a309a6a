// Hardware-efficient VQE ansatz: four qubits, two layers of rotations and a CX ladder,
// with the optimiser's current parameters bound.
OPENQASM 3.0;
include "stdgates.inc";
qubit[4] q;
bit[4] c;
ry(0.412) q[0];
ry(-1.105) q[1];
ry(2.331) q[2];
ry(0.078) q[3];
rz(1.571) q[0];
rz(-0.266) q[1];
rz(0.934) q[2];
rz(-2.718) q[3];
cx q[0], q[1];
cx q[1], q[2];
cx q[2], q[3];
ry(-0.651) q[0];
ry(1.847) q[1];
ry(-0.392) q[2];
ry(1.206) q[3];
rz(0.503) q[0];
rz(-1.288) q[1];
rz(2.004) q[2];
rz(0.117) q[3];
cx q[0], q[1];
cx q[1], q[2];
cx q[2], q[3];
c = measure q;
