# Warnings for our own targets only; third-party headers come in as SYSTEM.
add_library(sb_warnings INTERFACE)
target_compile_options(sb_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
if(SB_WERROR)
  target_compile_options(sb_warnings INTERFACE -Werror)
endif()
