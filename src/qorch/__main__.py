from qorch.cli import command

# Guarded: a spawned simulation process imports this module again.
if __name__ == "__main__":
    command()
