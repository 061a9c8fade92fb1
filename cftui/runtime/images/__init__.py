"""The images a bot's stack runs: built here, from the repository's sources,
only when missing or when their sources changed, with no build step that
needs the network (bases are imported from Debian packages when no registry
answers; Python packages come as wheels fetched on the host).

Nothing is imported here, so that a caller of one part (Lima's use of
`hashing`) does not load the docker SDK: import what you use from its module.

    catalog     the images' names, labels and source directories
    services    the service images and project bases (`ensure_image`)
    gateway     a bot's gateway image from its code/, built contained
    base_image  clawfactory/base:bookworm, from Debian packages
    wheels      the proxies' wheels, fetched on the host and cached
    engine      inspect, pull, one classic-builder build as progress
    hashing     the content hashes that decide a rebuild
    dockerfile  a Dockerfile read as Docker's parser reads it
    context     a gateway's build context tar, following no link
    cache       the machine's build cache and its file locks
    commands    host commands (debootstrap, pip) as progress
"""
