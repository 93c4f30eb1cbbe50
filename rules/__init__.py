"""elbolint's rules, one module per rule. Installed as the package `elbolint.rules`.

Adding a rule: a new module here with one `Rule` subclass, and a folder `fixtures/<CODE>/` with
bad and good example files. Nothing else needs to change.
"""
