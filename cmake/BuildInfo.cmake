# Run at every build (a custom target): refreshes the commit in build_info.h, rewriting the file
# only when its content changes so nothing recompiles needlessly.
execute_process(COMMAND git -C ${SRC} describe --always --dirty --abbrev=12
                OUTPUT_VARIABLE HFKIT_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT HFKIT_GIT_COMMIT)
  set(HFKIT_GIT_COMMIT unknown)
endif()
configure_file(${SRC}/lib/cli/build_info.h.in ${DST}.tmp @ONLY)
file(COPY_FILE ${DST}.tmp ${DST} ONLY_IF_DIFFERENT)
