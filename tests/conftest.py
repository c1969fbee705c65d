pytest_plugins = ["tests.sshd", "tests.instances.fixtures"]
