"""seald: the electronic-seal signing appliance daemon."""

__version__ = "0.1.0"
