"""``dockyard build`` (issue 11), being built: the Dockerfile language and the context.

  dockerfile.py   parse (the official parser, the ``dockerfile`` package) and Docker's variable
                  expansion; also serves ``import``/``commit --change``
  ignore.py       .dockerignore patterns and the context walk
"""
