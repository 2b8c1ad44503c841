"""Lightning callbacks trainlab ships (selected through conf/callbacks/)."""
