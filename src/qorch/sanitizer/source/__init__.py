"""Reading the OpenQASM text before parsing: scanning, gate definitions, statements."""
