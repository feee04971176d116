//! Sans-I/O HTTP/1.1.
