"""The Docker runtime (`runtime.DockerRuntime`), one module a concern.

Nothing is imported here, so that a module that needs one pure part (the
specs' `gateway_user`, the probes of `health`) does not load the runtime:
import what you use from its module.

    runtime     DockerRuntime: a start, a stop, the gateway alone
    engine      the SDK client, the thread pool, blocking streams read async
    prepare     the host side of a start (env, control file, wiring, owners)
    build       the stack's images; a gateway build the kill can hang up on
    infra       networks, volumes and containers, made again when their spec changed
    readiness   waiting until each service answers, or saying why it does not
    watch       status, the events stream, log lines
    kill        the kill switch on Docker
    spec        what each container looks like (pure)
    states      Docker's states in the runtime's words (pure)
    health      the probes of each service
    firewall    no route from a bot's internal network to the host
"""
