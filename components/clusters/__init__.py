"""One module per cluster kind; ``components.cluster.create_cluster`` picks the one a stack needs."""
