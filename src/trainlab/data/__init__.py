"""Datamodules (one per `data=<name>` config), the datasets they hand out, transforms and splits."""
