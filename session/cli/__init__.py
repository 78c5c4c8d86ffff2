"""The thin command line on top: parses arguments and calls the layers below with plain parameters."""
