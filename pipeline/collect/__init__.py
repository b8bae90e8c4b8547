"""`natlens collect`: run the right commands on every node and write a timestamped bundle.

access.py   how to run a command on a node (local, netns, docker, ssh, kubectl debug)
commands.py which commands make a bundle, and their files
facts.py    a node's clock, kernel, tools and versions in one round trip
manifest.py the manifest.json per node
run.py      the order: facts, recorders on all nodes at once, state dumps, clocks, cluster
"""
