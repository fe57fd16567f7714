using System.Reflection;
using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Cuda.Kernels;

namespace Lowbit.Tests.Backends.Cuda;

/// <summary>
/// ILGPU's O2 uniformity analysis emits <c>bra.uni</c> (a branch the whole warp takes the same way) for branches on
/// values that differ between threads (Kernels/Uniformity). The PTX of kernels whose every branch depends on the
/// thread's own data is compiled here, with no GPU, as the backend compiles it, and must hold no conditional
/// <c>bra.uni</c>.
/// </summary>
public sealed partial class UniformityTests
{
    [Theory]
    [InlineData(typeof(Bf16Dequantizer), "Int4Grouped", null)]
    [InlineData(typeof(Bf16Dequantizer), "RowScaled", typeof(Int8PerRowValues))]
    [InlineData(typeof(Bf16Dequantizer), "RowScaled", typeof(Float8PerRowValues))]
    public void Per_thread_branches_are_not_emitted_as_uniform(Type type, string kernel, Type? typeArgument)
    {
        var method = type.GetMethod(kernel, BindingFlags.NonPublic | BindingFlags.Static)
            ?? throw new InvalidOperationException($"{type.Name}.{kernel} not found");
        if (typeArgument is not null)
            method = method.MakeGenericMethod(typeArgument);
        using var context = Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2)); // as CudaBackend.Open
        using var backend = new PTXBackend(context, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, nvvmAPI: null!); // no libNVVM: ILGPU's own PTX generator
        var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(method), default);
        var uniform = ConditionalUniformBranch().Matches(compiled.PTXAssembly);
        Assert.True(uniform.Count == 0, $"{type.Name}.{kernel}: {uniform.Count} conditional bra.uni, first: {(uniform.Count > 0 ? uniform[0].Value.Trim() : "")}");
    }

    [GeneratedRegex(@"^\s*@!?%p\d+\s+bra\.uni.*$", RegexOptions.Multiline)]
    private static partial Regex ConditionalUniformBranch();
}
