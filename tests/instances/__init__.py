"""The instance emulator: a really booted machine behind every instance moto launches.

moto checks the EC2 API calls but boots nothing. Here every instance it reports becomes a
Debian 12 root file system booted by ``systemd-nspawn`` (systemd, D-Bus, cloud-init, sshd), fed
that instance's real user-data and key through cloud-init's NoCloud seed, so what happens *on*
an instance (the deadline timer, setup, the pinned host key, a bake) runs for real.

- ``disk``: the root file system, built once with debootstrap and cached outside the repo.
- ``container``: one booted container per instance (an overlay over the image's layers).
- ``emulator``: watches moto, boots and stops containers, powers-off -> terminated,
  ``CreateImage`` -> a snapshot layer, and writes the endpoint map the product reads
  (``$ORCHESTRATE_AWS_ENDPOINTS``: each sshd listens on a loopback port, the one liberty taken).
- ``fixtures``: the pytest fixtures (``moto_server``, ``aws_env``, ``instance_emulator``).
"""
