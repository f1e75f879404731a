"""The one facade for evmesh build rules."""

# Only the hooks are exported from a module; everything else stays hidden.
EVMESH_COPTS = ["-fvisibility=hidden", "-fvisibility-inlines-hidden"]

def evmesh_cc_library(name, copts = [], **kwargs):
    """A library of filter code (exceptions stay on; module.cc catches them at the C boundary)."""
    native.cc_library(
        name = name,
        copts = copts + EVMESH_COPTS,
        **kwargs
    )

def evmesh_dynamic_module(name, deps, **kwargs):
    """An Envoy dynamic module: lib<name>.so whose only exports are the envoy_dynamic_module_on_* hooks."""
    native.cc_binary(
        name = "lib" + name + ".so",
        linkshared = True,
        linkstatic = True,
        deps = deps,
        additional_linker_inputs = ["//bazel:module.lds"],
        linkopts = [
            "-Wl,--version-script=$(location //bazel:module.lds)",
            "-Wl,--exclude-libs,ALL",
            "-Wl,--as-needed",
            "-static-libstdc++",
            "-static-libgcc",
        ],
        **kwargs
    )

def evmesh_cc_test(name, deps = [], **kwargs):
    native.cc_test(
        name = name,
        deps = deps + ["//bazel:gtest_main"],
        # Link the (hidden-visibility) libraries statically into the test.
        linkstatic = True,
        **kwargs
    )
