"""The `pentad agent` daemon: runs and watches game servers on one host, talks to the panel over the
network only. Stays light: the shim (`python -I -m pentad.agent.shim`) imports this package too."""
