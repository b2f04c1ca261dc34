"""The workers as one cluster: who owns which partitions, and KPI questions asked of all of them."""
