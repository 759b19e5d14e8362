# Helpers shared by the weft CMake files.

# weft_set_warnings(<target>) : the project's warning flags on <target>;
# -Werror only when WEFT_WERROR is ON: off for a plain `cmake` (a user's
# newer compiler must not fail the build on a new warning), on in the
# project's own builds (the Makefile and scripts/run-tests.sh pass it).
function(weft_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  if(WEFT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# weft_file_directive(<out> <file> <key> <default>) : reads a one-line
# directive `// <key>: value` (or `/* <key>: value */`) from <file>, so that
# a source file can carry its own build settings, e.g.
#     // weft-test-timeout: 300
#     // weft-test-labels: fault;slow
# Sets <out> to the value (trimmed), or to <default> when the file has none.
function(weft_file_directive out file key default)
  # a directive line starts with //, /* or the * of a block comment's line
  file(STRINGS "${file}" _lines REGEX "^[ \t]*(//|/\\*|\\*)[ \t]*${key}:" LIMIT_COUNT 1)
  if(_lines)
    string(REGEX REPLACE "^[ \t]*(//|/\\*|\\*)[ \t]*${key}:[ \t]*" "" _v "${_lines}")
    string(STRIP "${_v}" _v)
    string(REGEX REPLACE "\\*/$" "" _v "${_v}")
    string(STRIP "${_v}" _v)
    string(REGEX REPLACE "[ \t]*,[ \t]*" ";" _v "${_v}")
    set(${out} "${_v}" PARENT_SCOPE)
  else()
    set(${out} "${default}" PARENT_SCOPE)
  endif()
endfunction()

# weft_relocatable_prefix(<out> <reldir>) : "${pcfiledir}/../.." with as many
# ".." as <reldir> (relative to the install prefix) has components, so that
# weft.pc finds the prefix it was installed under, wherever that is.
function(weft_relocatable_prefix out reldir)
  if(IS_ABSOLUTE "${reldir}")
    set(${out} "${CMAKE_INSTALL_PREFIX}" PARENT_SCOPE)
    return()
  endif()
  string(REGEX REPLACE "/+$" "" _d "${reldir}")
  string(REPLACE "/" ";" _parts "${_d}")
  set(_p "\${pcfiledir}")
  foreach(_x IN LISTS _parts)
    string(APPEND _p "/..")
  endforeach()
  set(${out} "${_p}" PARENT_SCOPE)
endfunction()

# weft_pc_dir(<out> <dir>) : <dir> as written in weft.pc: "${prefix}/<dir>"
# when relative, else as is.
function(weft_pc_dir out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
