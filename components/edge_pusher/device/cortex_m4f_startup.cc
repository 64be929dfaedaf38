// Cortex-M4F start-up for the device check under QEMU (mps2-an386): the vector table, then the FPU
// switched on (hard-float code faults without it), then newlib's _start (zeroes .bss, runs the
// static constructors, calls main, exits; with semihosting it also gives stdout and the exit code).
extern "C" void _start(void);
extern "C" unsigned long __stack;

extern "C" __attribute__((naked, noreturn)) void Reset_Handler(void) {
  __asm volatile(
      "ldr r0, =0xE000ED88\n"  // CPACR
      "ldr r1, [r0]\n"
      "orr r1, r1, #(0xF << 20)\n"  // CP10 and CP11: full access
      "str r1, [r0]\n"
      "dsb\n"
      "isb\n"
      "b _start\n");
}

extern "C" void Fault_Handler(void) {
  while (true) {
  }
}

using Handler = void (*)(void);
extern "C" __attribute__((section(".vectors"), used)) const Handler vectors[16] = {
    reinterpret_cast<Handler>(&__stack), Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, nullptr, nullptr, nullptr, nullptr, Fault_Handler, Fault_Handler,
    nullptr, Fault_Handler, Fault_Handler};
