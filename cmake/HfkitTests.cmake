# Test registration helpers.
#
# hfkit_check_test_case_names(dir): stops the configure (FATAL_ERROR naming file:line) when a doctest
# case name in dir/**/*_test.cpp contains ';'. doctest_discover_tests makes each case name a ctest
# name, and CMake splits it at ';' into names that match no case: those entries ran nothing and
# passed. (The doctest main fails such a run too; this says which name, before anything is built.)
# Only the first string literal of a TEST_CASE/TEST_CASE_FIXTURE/SCENARIO line is read.
function(hfkit_check_test_case_names dir)
  file(GLOB_RECURSE files LIST_DIRECTORIES false ${dir}/*_test.cpp)
  set(found "")
  foreach(file IN LISTS files)
    file(READ ${file} text)
    # One list element per line: ';' and brackets would change how CMake splits the list.
    string(REPLACE ";" "<semicolon>" text "${text}")
    string(REPLACE "[" "<lbracket>" text "${text}")
    string(REPLACE "]" "<rbracket>" text "${text}")
    string(REPLACE "\n" ";" lines "${text}")
    set(n 0)
    foreach(line IN LISTS lines)
      math(EXPR n "${n} + 1")
      if(line MATCHES "(TEST_CASE|SCENARIO)[A-Z_]*\\(([^\"]*,)? *\"([^\"]*)\"")
        set(name "${CMAKE_MATCH_3}")
        if(name MATCHES "<semicolon>")
          string(REPLACE "<semicolon>" ";" name "${name}")
          string(REPLACE "<lbracket>" "[" name "${name}")
          string(REPLACE "<rbracket>" "]" name "${name}")
          file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${file})
          string(APPEND found "\n  ${rel}:${n}: \"${name}\"")
        endif()
      endif()
    endforeach()
  endforeach()
  if(found)
    message(FATAL_ERROR "doctest case names must not contain ';' (ctest splits the name, and the halves "
                        "would run no test): rename${found}")
  endif()
endfunction()

# hfkit_add_test_subdirectories([EXCEPT name...]): add_subdirectory for every folder beside the
# calling CMakeLists.txt (but EXCEPT); FATAL_ERROR for a folder without a CMakeLists.txt, whose tests
# would otherwise never be registered. A list of names guarded by if(EXISTS) dropped whole suites.
function(hfkit_add_test_subdirectories)
  cmake_parse_arguments(ARG "" "" "EXCEPT" ${ARGN})
  file(GLOB entries LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT entries)
  foreach(sub IN LISTS entries)
    if(NOT IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/${sub} OR sub IN_LIST ARG_EXCEPT OR sub MATCHES "^[.]|^__")
      continue()
    endif()
    if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${sub}/CMakeLists.txt)
      file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/${sub})
      message(FATAL_ERROR "${rel} has no CMakeLists.txt: its tests would never run")
    endif()
    add_subdirectory(${sub})
  endforeach()
endfunction()
