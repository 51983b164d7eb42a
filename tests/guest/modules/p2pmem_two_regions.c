// SPDX-License-Identifier: GPL-2.0
/*
 * A p2pmem provider with two regions, for the p2pmem_pci test rig: it gives
 * the two halves of a device's BAR 2 to the P2PDMA core as two regions and
 * publishes them, as a driver of a device with two memory windows would.
 * It binds only through driver_override.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>

#define TWO_REGIONS_BAR	2

static int two_regions_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	resource_size_t half = pci_resource_len(pdev, TWO_REGIONS_BAR) / 2;
	int ret;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	ret = pci_p2pdma_add_resource(pdev, TWO_REGIONS_BAR, half, 0);
	if (ret)
		return ret;
	ret = pci_p2pdma_add_resource(pdev, TWO_REGIONS_BAR, half, half);
	if (ret)
		return ret;
	pci_p2pmem_publish(pdev, true);
	return 0;
}

static struct pci_driver two_regions_driver = {
	.name = "p2pmem_two_regions",
	.probe = two_regions_probe,
};
module_pci_driver(two_regions_driver);

MODULE_DESCRIPTION("p2pmem provider with two regions (p2pmem_pci test rig)");
MODULE_LICENSE("GPL");
